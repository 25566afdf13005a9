"""Analysis tests: one torch thread (the machine is shared) and tiny budgets."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
