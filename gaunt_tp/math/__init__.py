"""Conventions and constant tables, computed once in float64 (no modules, no I/O)."""

from gaunt_tp.math.conventions import real_spherical_harmonics, sh_dim, sh_offset, unit_vectors
from gaunt_tp.math.fourier import fourier_to_sh, sh_to_fourier, sin_theta_integral
from gaunt_tp.math.gaunt import gaunt, is_gaunt_path
from gaunt_tp.math.gradients import harmonic_gradients, is_odd_path, odd_product_coefficients
from gaunt_tp.math.quadrature import PointGrid, SphereGrid, gauss_legendre_grid, lebedev_grid, smallest_grid

__all__ = [
    "PointGrid",
    "SphereGrid",
    "fourier_to_sh",
    "gauss_legendre_grid",
    "gaunt",
    "harmonic_gradients",
    "is_gaunt_path",
    "is_odd_path",
    "lebedev_grid",
    "odd_product_coefficients",
    "real_spherical_harmonics",
    "sh_dim",
    "sh_offset",
    "sh_to_fourier",
    "sin_theta_integral",
    "smallest_grid",
    "unit_vectors",
]
