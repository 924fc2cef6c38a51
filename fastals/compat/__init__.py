"""Drop-in replacements for other libraries' models, on fastals' kernels.

* :mod:`fastals.compat.implicit` -- ``AlternatingLeastSquares``, the API of
  ``implicit.als.AlternatingLeastSquares`` (implicit 0.7).

Nothing here imports the library it imitates.
"""
