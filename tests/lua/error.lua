local function inner()
  error("boom from the script")
end
inner()
