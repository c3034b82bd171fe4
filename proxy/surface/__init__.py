"""The rest of OpenAI's surface: moderations, images, audio, files and batches.

One module per endpoint family; each parses its wire format, then runs the same
admission, upstream-with-retries and accounting as chat (``proxy.surface.calls``).
"""
