import numpy as np


def get_alphas():
    # the regularization strengths to try
    return np.arange(0.0, 1.0, 0.05)
