-- wrk: POSTs a client-credentials token request with HTTP Basic credentials from $BASIC
-- (the full header value) to the URL's path.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials" .. (os.getenv("EXTRA_FORM") or "")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("BASIC")
