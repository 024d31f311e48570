"""The scalings: muP as Tensor Programs V, Table 8, relative to a base width.

A layer computes ``m_W (x @ w) + m_b beta`` with ``w ~ N(0, s_W^2)``; an
optimizer with base learning rate ``eta`` updates ``w`` with ``c_W eta``. The
table is ``replication.parametrization.MUP_TABLE``, the data that module's
``affine_scaling`` and ``learning_rate_factors`` implement; this study prints it.
"""
from __future__ import annotations

from dataclasses import dataclass

from replication.parametrization import MUP_TABLE
from replication.report import Findings, Section, markdown_table
from replication.sweep import Streams

SECTION = "The scalings"


@dataclass(frozen=True)
class Config:
    """Nothing to choose: the table is the parameterization's."""


def measure(config: Config, streams: Streams) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """``(header, rows)`` of muP's table: per layer, ``s_W^2``, ``m_W`` and ``c_W`` for SGD and Adam."""
    return MUP_TABLE


def findings(config: Config, table) -> Findings:
    header, rows = table
    body = f"""
muP here is Tensor Programs V, Table 8 (the formulation of the `mup` package: the readout's init
variance constant in width and its multiplier 1 / r), written relative to a base width so that at
width = base width it is SP exactly; r = width / base_width. A layer computes m_W (x @ w) + m_b beta
with w ~ N(0, s_W^2); an optimizer with base learning rate eta updates w with c_W eta. The table, from
`replication.parametrization`, with the derivation there (including why Table 3's readout,
variance 1/fan_in^2 with SGD learning rate 1/fan_in, is the same dynamics and why mixing the two is not):

{markdown_table(list(header), [list(row) for row in rows])}

SP and NTK parameterization use every c = 1. The per-layer learning rates are an optax composition:
the base optimizer, then each leaf's update scaled by its factor through `optax.multi_transform`
over a label tree (`MLP.optimizer`).
"""
    return Findings(sections=[Section(SECTION, body)])
