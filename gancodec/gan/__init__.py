"""The shared GAN core: discriminators, adversarial losses and penalties, EMA of weights."""
