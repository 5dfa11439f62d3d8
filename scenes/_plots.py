"""Figures of the scene demos."""


def save_figure(fig, path):
    """Lay out ``fig``, write it to ``path`` (PNG, 90 dpi) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
