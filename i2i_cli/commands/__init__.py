"""One module per command; each defines register(app). Thin: parse, call one library function, print."""
