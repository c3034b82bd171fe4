"""The built-in pipeline stages (proxy/pipeline/stage.py), one module each. The default
``SYNTHLANG_STAGES`` lists them in this order: cache, budget, translate, compression."""
