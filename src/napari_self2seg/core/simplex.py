"""Euclidean projection onto the probability simplex along the class axis.

The multi-class segmentation step (paper eq. 13) keeps, at every pixel, the
class memberships ``u_0, …, u_{K-1}`` on the simplex ``u_k >= 0``,
``sum_k u_k = 1``. The projection is the sort-based one of Held, Wolfe &
Crowder (1974), Duchi et al. (2008) and Condat (2016, "Fast projection onto the
simplex and the l1 ball", Algorithm 1): sort each vector in decreasing order,
find the largest ``j`` with ``s_j > (sum_{i<=j} s_i - 1) / j`` and shift
everything by that threshold (which is also the largest of these ratios, so it
needs no search). It runs on all pixels at once (a sort and
``torch.cumsum`` along the class axis, no Python loop over pixels; the sort is a
sorting network of element-wise min/max for up to 8 classes, ``torch.sort`` above). This is the
*probability* simplex; the authors' multi-class code projects onto the solid
simplex ``sum_k u_k <= 1``, which lets a pixel belong to no class.
"""

from __future__ import annotations

import torch


def project_simplex(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Project every vector along ``dim`` onto the probability simplex.

    Parameters
    ----------
    values : torch.Tensor
        Real tensor; the vectors to project lie along ``dim`` (length K >= 1).
    dim : int
        The class axis.

    Returns
    -------
    torch.Tensor
        A new tensor of the same shape: ``argmin_u ||u - v||`` subject to
        ``u >= 0``, ``sum u = 1`` for each vector ``v``. For K = 2 the closed
        form ``u_1 = clip((v_1 - v_0 + 1) / 2, 0, 1)`` is used (the same
        projection with fewer operations; the binary case is the common one).

    Examples
    --------
    >>> import torch
    >>> project_simplex(torch.tensor([[0.2], [0.9], [-1.0]]))[:, 0]
    tensor([0.1500, 0.8500, 0.0000])
    """
    moved = values.movedim(dim, 0)
    if moved.shape[0] == 2:
        second = ((moved[1] - moved[0] + 1.0) * 0.5).clamp_(0.0, 1.0)
        return torch.stack((1.0 - second, second)).movedim(0, dim)
    return (moved - _threshold(moved)).clamp_(min=0.0).movedim(0, dim)


SORTING_NETWORK_MAX = 8
"""Up to this many classes a sorting network beats ``torch.sort`` along the class axis (2–2.6× at 256²)."""


def _threshold(values: torch.Tensor) -> torch.Tensor:
    """Return the shift ``tau`` of the projection along the first axis, shape ``(1, ...)``.

    With the values sorted decreasingly (``s_1 >= s_2 >= …``) and
    ``t_j = (s_1 + … + s_j - 1) / j``, the projection is ``max(v - t_rho, 0)``
    for the last ``rho`` with ``s_rho > t_rho``, and ``t_rho = max_j t_j``:
    ``t_j - t_{j-1} = (s_j - t_{j-1}) / j`` is positive exactly up to ``rho``
    (Held, Wolfe & Crowder 1974; Condat 2016), so no index search is needed.
    For few classes the sort is an odd–even transposition network of
    element-wise ``maximum``/``minimum`` between neighbouring classes, and the
    running sums are plain additions: both faster than ``torch.sort`` and
    ``torch.cumsum`` along a short strided axis. The loops are over classes,
    never over pixels.
    """
    k = values.shape[0]
    if k > SORTING_NETWORK_MAX:
        ordered = torch.sort(values, dim=0, descending=True).values
        counts = torch.arange(1, k + 1, dtype=values.dtype, device=values.device).view((-1,) + (1,) * (values.ndim - 1))
        return ((ordered.cumsum(dim=0) - 1.0) / counts).amax(dim=0, keepdim=True)
    rows = list(values.unbind(0))
    for sweep in range(k):
        for i in range(sweep % 2, k - 1, 2):
            rows[i], rows[i + 1] = torch.maximum(rows[i], rows[i + 1]), torch.minimum(rows[i], rows[i + 1])
    running = rows[0].clone()
    best = running - 1.0
    for j in range(1, k):
        running.add_(rows[j])
        torch.maximum(best, (running - 1.0) / (j + 1), out=best)
    return best.unsqueeze(0)
