-- wrk: GETs the URL with a bearer token; the tokens, one per line in $TOKENS, are used in turn.
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do
  tokens[#tokens + 1] = "Bearer " .. line
end
local next_token = 0

request = function()
  next_token = next_token % #tokens + 1
  return wrk.format(nil, nil, { ["Authorization"] = tokens[next_token] })
end
