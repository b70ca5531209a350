"""Ranking and metric-learning losses."""

from __future__ import annotations

from typing import Any

from fastloss import _elementwise, _validate

ArrayLike = Any

__all__ = ["margin_ranking_loss"]


def margin_ranking_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 0.0,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    return_grad: bool = False,
) -> Any:
    """Margin ranking loss ``max(0, -target (x1 - x2) + margin)``, ``target`` exactly -1 or +1.

    Matches ``torch.nn.functional.margin_ranking_loss`` (which does not check the labels; fastloss
    raises ValueError for anything but ±1). With ``return_grad=True`` returns
    ``(value, (d/dx1, d/dx2))``.

    >>> import fastloss
    >>> float(fastloss.margin_ranking_loss([1.0, 0.0], [0.0, 1.0], [1, 1], margin=0.5))
    0.75
    """
    m = _validate.real_param("margin", margin)
    return _elementwise.run(
        "margin_ranking_loss",
        "margin_ranking",
        {"x1": x1, "target": target, "x2": x2},
        params=(m,),
        weight=weight,
        reduction=reduction,
        return_grad=return_grad,
    )
