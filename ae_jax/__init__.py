"""ae_jax: when does an autoencoder learn the identity, memorise, or learn structure?"""
