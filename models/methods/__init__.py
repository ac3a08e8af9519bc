"""Translation methods: each owns its networks and says which losses train which of them, in order."""
