"""Balanced reduction trees: logarithmic depth for any associative operator."""


def balanced(op, items):
    """``items`` combined with ``op`` (an associative binary function) in a balanced tree.

    ``functools.reduce`` and ``sum`` build a chain: ``n`` items, ``n - 1`` levels, and
    this project's Yosys flow keeps it (a chain of 256 ANDs left ``opt3``'s 16x16 grid
    268 cells deep). A tree needs ``ceil(log2 n)`` levels. Raises ``ValueError`` for no
    items.
    """
    items = list(items)
    if not items:
        raise ValueError("balanced: no items to combine")
    while len(items) > 1:
        items = [op(x, y) for x, y in zip(items[::2], items[1::2])] + items[len(items) // 2 * 2:]
    return items[0]
