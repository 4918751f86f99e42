"""One memo for the compiled functions of a model: built on first use per (model, name, key), dropped with
the model (a weak reference to it), so that graphs are never compiled twice for the same model and shapes."""

import weakref

_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def per_model(model, name: str, key, build):
    """The function ``build()`` made for ``model``, ``name`` and ``key`` (any hashable: beam, k, ...), built
    once; ``build`` typically returns an ``ms.jit`` function closing over ``model``.

    >>> class Model: pass
    >>> m = Model()
    >>> per_model(m, "f", 1, lambda: object()) is per_model(m, "f", 1, lambda: object())
    True
    """
    functions = _FUNCTIONS.setdefault(model, {})
    if (name, key) not in functions:
        functions[name, key] = build()
    return functions[name, key]
