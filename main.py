"""Google Cloud Functions entry point.

functions-framework loads ``main.py`` from the root of the deployed source and calls the
function named by ``--entry-point``:

    gcloud functions deploy synthlang-proxy --gen2 --runtime=python311 --trigger-http \
        --entry-point=synthlang_proxy --source=.

Why this file sits at the root: docs/decisions/0002-serverless-entry-points.md.
"""

from synthlang_site.serverless import cloud_function


def synthlang_proxy(request):
    return cloud_function(request)
