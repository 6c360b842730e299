"""GraphRouter: edge prediction on a heterogeneous task–query–LLM graph, in plain torch.

Reference: Feng, Shen and You, "GraphRouter: A Graph-based Router for LLM Selections",
ICLR 2025 (arXiv:2410.03834). Three kinds of nodes: tasks, queries and LLMs. Each query is
linked to its task and to every LLM; a query–LLM edge carries the observed *effect* (score) and
*cost* of that call. Routing a new query is edge prediction: the GNN embeds the query's node
from its text embedding, its task node and the LLM nodes (which have aggregated the edges of
all training queries), and a head predicts effect and cost of each of its edges. The router
plays ``argmax_m σ(effect) − λ·cost``.

Small-scale choices (no PyG needed: every query links to every LLM, so the bipartite graph is a
dense ``(queries, LLMs)`` grid and message passing is a few tensor ops):

* node features: query = its sentence embedding; task and LLM nodes = learned vectors (the
  paper embeds their text descriptions, which the outcome table does not hold);
* two rounds of mean-aggregation message passing (query ← LLMs via edge features, query ←
  task, LLM ← queries via edge features, task ← queries), messages ``ReLU(W h + W_e e)``;
* training masks the edges of a random ``mask_fraction`` of the training queries each epoch
  and learns to predict them (BCE on effect, squared error on cost); masked queries send no
  messages, exactly like a new query at test time;
* a new query's task is the nearest task centroid of the training embeddings (tasks are
  given at training time; at routing time only the embedding is observed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from agents.base import OneShotRouter
from routing_gym.outcomes import Outcomes


@dataclass
class GraphRouterConfig:
    """Hyperparameters of GraphRouter."""

    hidden: int = 64
    layers: int = 2
    epochs: int = 100  # full-graph steps
    learning_rate: float = 1e-2
    weight_decay: float = 1e-5
    mask_fraction: float = 0.3  # training queries whose edges are hidden and predicted each epoch
    cost_weight: float = 1.0  # weight of the cost loss next to the effect loss
    seed: int = 0
    lam: float | str | None = None  # λ of σ(effect) − λ·cost; None = the env's


class HeteroGNN(nn.Module):
    """Message passing over task, query and LLM nodes; an edge head predicts effect and cost.

    A message along a query–LLM edge is ``ReLU(W_node h_sender + W_edge e)`` (GraphSAGE-style,
    with the edge's features); written as a broadcast sum rather than a concatenation, so a
    layer over the dense grid stays a few cheap tensor ops.
    """

    EDGE_FEATURES = 3  # effect, cost, observed flag

    def __init__(self, embed_dim: int, num_tasks: int, num_arms: int, hidden: int, layers: int):
        super().__init__()
        e = self.EDGE_FEATURES
        linears = lambda bias=True: nn.ModuleList(
            nn.Linear(hidden, hidden, bias=bias) for _ in range(layers)
        )  # noqa: E731
        edge_linears = lambda: nn.ModuleList(
            nn.Linear(e, hidden, bias=False) for _ in range(layers)
        )  # noqa: E731
        self.query_in = nn.Linear(embed_dim, hidden)
        self.task_emb = nn.Parameter(0.1 * torch.randn(num_tasks, hidden))
        self.llm_emb = nn.Parameter(0.1 * torch.randn(num_arms, hidden))
        self.q_self, self.q_from_llm, self.q_edge, self.q_from_task = (
            linears(),
            linears(),
            edge_linears(),
            linears(False),
        )
        self.m_self, self.m_from_q, self.m_edge = linears(), linears(), edge_linears()
        self.t_self, self.t_from_q = linears(), linears(False)
        self.head_q, self.head_m, self.head_qm = (
            nn.Linear(hidden, hidden),
            nn.Linear(hidden, hidden, bias=False),
            nn.Linear(hidden, hidden, bias=False),
        )
        self.head_out = nn.Linear(hidden, 2)

    def _query_update(self, l: int, h_q, h_m, h_t_of_q, edges) -> torch.Tensor:
        # message from each LLM over its edge, averaged over the query's K edges
        to_q = F.relu(self.q_from_llm[l](h_m)[None, :, :] + self.q_edge[l](edges)).mean(1)
        return F.relu(self.q_self[l](h_q) + to_q + self.q_from_task[l](h_t_of_q))

    def graph_states(
        self, x: torch.Tensor, tasks: torch.Tensor, edges: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """LLM and task node states of each layer, from the observed queries ``x`` with ``edges`` (n, K, 3)."""
        h_q = F.relu(self.query_in(x))
        h_m, h_t = self.llm_emb, self.task_emb
        counts = torch.bincount(tasks, minlength=len(h_t)).clamp(min=1)[:, None].float()
        states = [(h_m, h_t)]
        for l in range(len(self.q_self)):
            to_m = F.relu(self.m_from_q[l](h_q)[:, None, :] + self.m_edge[l](edges)).mean(0)
            to_t = torch.zeros_like(h_t).index_add(0, tasks, h_q) / counts
            h_q, h_m, h_t = (
                self._query_update(l, h_q, h_m, h_t[tasks], edges),
                F.relu(self.m_self[l](h_m) + to_m),
                F.relu(self.t_self[l](h_t) + self.t_from_q[l](to_t)),
            )
            states.append((h_m, h_t))
        return states

    def predict_edges(self, x: torch.Tensor, tasks: torch.Tensor, states) -> torch.Tensor:
        """Effect logit and cost ``(b, K, 2)`` of new queries' edges (they send no messages)."""
        h_q = F.relu(self.query_in(x))
        for l in range(len(self.q_self)):
            h_m, h_t = states[l]
            hidden_edges = torch.zeros(len(x), len(h_m), self.EDGE_FEATURES)
            h_q = self._query_update(l, h_q, h_m, h_t[tasks], hidden_edges)
        h_m = states[-1][0]
        pair = (
            self.head_q(h_q)[:, None, :]
            + self.head_m(h_m)[None, :, :]
            + self.head_qm(h_q[:, None, :] * h_m[None, :, :])
        )
        return self.head_out(F.relu(pair))


class GraphRouter(OneShotRouter):
    """GraphRouter (Feng et al., ICLR 2025): task–query–LLM graph, edge prediction of effect and cost."""

    name = "graphrouter"
    Config = GraphRouterConfig

    def _check_config(self) -> None:
        super()._check_config()
        if not 0 < self.config.mask_fraction < 1:
            raise ValueError(
                f"GraphRouterConfig key 'mask_fraction' must be in (0, 1), got {self.config.mask_fraction!r}."
            )

    def _fit(self, data: Outcomes) -> None:
        cfg = self.config
        task_names = sorted(set(data.tasks)) if data.tasks is not None else ["default"]
        task_of = {t: i for i, t in enumerate(task_names)}
        tasks = torch.tensor(
            [task_of[t] for t in data.tasks] if data.tasks is not None else [0] * len(data)
        )
        x = torch.tensor(data.features)  # a copy: the env hands out read-only arrays
        edges = torch.from_numpy(
            np.stack([data.scores, data.costs, np.ones_like(data.scores)], axis=-1)
        ).float()
        # nearest-centroid task assignment of new queries (cosine)
        centroids = torch.zeros(len(task_names), x.shape[1]).index_add(0, tasks, x)
        self.centroids = F.normalize(centroids, dim=1)
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            self.net = HeteroGNN(
                x.shape[1], len(task_names), len(data.arms), cfg.hidden, cfg.layers
            )
            optimizer = torch.optim.Adam(
                self.net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
            )
            for _ in range(cfg.epochs):
                hidden = torch.rand(len(x)) < cfg.mask_fraction
                if hidden.all() or not hidden.any():
                    continue
                seen = ~hidden
                states = self.net.graph_states(x[seen], tasks[seen], edges[seen])
                out = self.net.predict_edges(x[hidden], tasks[hidden], states)
                target = edges[hidden]
                loss = F.binary_cross_entropy_with_logits(
                    out[..., 0], target[..., 0]
                ) + cfg.cost_weight * F.mse_loss(out[..., 1], target[..., 1])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        self.net.eval()
        with torch.no_grad():  # every training query observed: the graph new queries attach to
            self.states = self.net.graph_states(x, tasks, edges)
        self.task_names = task_names

    @torch.no_grad()
    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = torch.as_tensor(x, dtype=torch.float32)
        tasks = (F.normalize(q, dim=1) @ self.centroids.T).argmax(dim=1)
        out = self.net.predict_edges(q, tasks, self.states)
        return torch.sigmoid(out[..., 0]).numpy(), out[..., 1].numpy()

    def _get_state(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "embed_dim": self.net.query_in.in_features,
            "centroids": self.centroids,
            "states": self.states,
            "task_names": self.task_names,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        cfg = self.config
        self.task_names = state["task_names"]
        self.net = HeteroGNN(
            state["embed_dim"], len(self.task_names), len(self.arms), cfg.hidden, cfg.layers
        )
        self.net.load_state_dict(state["net"])
        self.net.eval()
        self.centroids, self.states = state["centroids"], state["states"]
