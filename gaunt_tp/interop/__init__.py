"""Models of other packages as gaunt-tp models (:mod:`gaunt_tp.interop.mace`: mace-torch's)."""
