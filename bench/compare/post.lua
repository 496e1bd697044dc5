-- wrk script for bench/compare.sh: POST an OpenAI chat request with an API key, and count
-- the answers by status exactly (wrk itself only counts "non-2xx or 3xx").
--
-- Every thread counts in its own Lua state; done() adds them up through the thread
-- objects that setup() kept, and prints one line that compare.sh parses:
--   RESULT requests=N duration_us=N ok=N r429=N other=N err_connect=N ... p50_us=N p99_us=N

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-1"
wrk.body = '{"model":"bench-model","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":16}'

local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	n2xx, n429, nother = 0, 0, 0
end

function response(status, headers, body)
	if status == 429 then
		n429 = n429 + 1
	elseif status >= 200 and status < 300 then
		n2xx = n2xx + 1
	else
		nother = nother + 1
	end
end

function done(summary, latency, requests)
	local ok, r429, other = 0, 0, 0
	for _, t in ipairs(threads) do
		ok = ok + t:get("n2xx")
		r429 = r429 + t:get("n429")
		other = other + t:get("nother")
	end
	local e = summary.errors
	io.write(string.format("RESULT requests=%d duration_us=%d ok=%d r429=%d other=%d "
		.. "err_connect=%d err_read=%d err_write=%d err_timeout=%d "
		.. "p50_us=%d p99_us=%d mean_us=%.1f\n",
		summary.requests, summary.duration, ok, r429, other,
		e.connect, e.read, e.write, e.timeout,
		latency:percentile(50), latency:percentile(99), latency.mean))
end
