"""Generation: image sets (MNIST, folders), the MNIST judge and the generative metrics."""
