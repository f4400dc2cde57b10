"""Operating a deployment: retention (``cleanup``) and diagnosis (``doctor``, why an execution
is not moving). Internal, no stability promise; the client calls and the CLI are the API."""
