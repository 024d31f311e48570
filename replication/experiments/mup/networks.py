"""The MLPs of the coordinate check, the learning-rate transfer and the NNGP at initialisation: inputs on
the sphere in R^input_dim, one activation and W_std, b_std in every layer, under SP, NTK
parameterization or muP."""
from __future__ import annotations

from dataclasses import dataclass

from replication.arch import MLP

PARAMETERIZATIONS = ("standard", "ntk", "mup")
LABELS = {"standard": "SP", "ntk": "NTK", "mup": "muP"}


@dataclass(frozen=True)
class Networks:
    input_dim: int = 16           # inputs on the sphere of radius sqrt(input_dim) in R^input_dim
    activation: str = "relu"
    W_std: float = 2**0.5
    b_std: float = 0.1

    def spec(self, parameterization: str, width: int, depth: int, base_width: int,
             zero_readout: bool = False) -> MLP:
        """One MLP; ``base_width`` (where muP is SP exactly) matters under muP only."""
        return MLP(width, depth, self.activation, W_std=self.W_std, b_std=self.b_std,
                   parameterization=parameterization,
                   base_width=base_width if parameterization == "mup" else None, zero_readout=zero_readout)
