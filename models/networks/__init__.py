"""Pure nn.Modules: generators, discriminators, feature extractors. No optimizers, files or devices."""
