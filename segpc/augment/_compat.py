"""imgaug 0.4.0 (the last release) on numpy >= 1.24.

imgaug still spells ``np.bool`` (``SomeOf``/``OneOf``, polygon masks) and ``np.complex``
(``Power`` parameters, frequency noise), aliases numpy removed in 1.24. Restore exactly those
two aliases to the builtins they always stood for; nothing else in numpy changes, and code that
does not use the removed names cannot notice. Imported before imgaug by ``segpc.augment``.
"""
import numpy as np


def _restore_alias(name: str, value) -> None:
    try:
        getattr(np, name)
    except AttributeError:
        setattr(np, name, value)


if int(np.__version__.split(".")[0]) < 2:  # numpy 2 has np.bool (= np.bool_) again
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _restore_alias("bool", bool)
        _restore_alias("complex", complex)
