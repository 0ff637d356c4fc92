"""One module per deployed function; the URL slug is the module name with _ -> -."""
