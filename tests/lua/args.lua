-- prints its arguments as the runner hands them over
local n = select("#", ...)
print("arg0=" .. arg[0])
print("n=" .. #arg .. " varargs=" .. n)
for i = 1, #arg do print(i .. "=" .. arg[i] .. "|" .. select(i, ...)) end
