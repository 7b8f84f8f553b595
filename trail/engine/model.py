"""The TRAIL model: vLLM's Llama plus layer-k residual capture that survives torch.compile.

A forward hook never fires inside a compiled graph, so we use vLLM's EAGLE-3 aux-hidden-state
path: the compiled LlamaModel returns layer k's residual stream (hidden + residual) beside the
final hidden state. The outer forward (not compiled) keeps it for the runner hook and returns
only the final hidden state, so the runner behaves as for plain Llama.
"""

from __future__ import annotations

import torch
from vllm.model_executor.models.llama import LlamaForCausalLM

from trail.engine.trail_config import TrailConfig
from trail.engine.vllm_hooks import set_capture_layers, split_aux


class TrailLlamaForCausalLM(LlamaForCausalLM):
    def __init__(self, *, vllm_config, prefix: str = "", **kwargs):  # noqa: ANN001
        super().__init__(vllm_config=vllm_config, prefix=prefix, **kwargs)
        self.trail = TrailConfig.from_hf_config(vllm_config.model_config.hf_config)
        self.trail_layers = self.trail.resolved_capture_layers()
        self.trail_layer = self.trail.resolved_layer()
        # output after decoder layer k == aux index k + 1 (index 0 is the embeddings); vLLM
        # returns the aux states sorted by layer, so keep ours sorted too
        self.trail_layers.sort()
        self.trail_probe_index = self.trail_layers.index(self.trail_layer)
        set_capture_layers(self, tuple(k + 1 for k in self.trail_layers))
        self.trail_capture: torch.Tensor | None = None
        # kept out of the module tree so vLLM's weight loading never sees the probe
        self.__dict__["trail_probe"] = self.trail.load_probe_module()

    def forward(self, input_ids, positions, intermediate_tensors=None, inputs_embeds=None):  # noqa: ANN001, ANN201
        hidden, aux = split_aux(
            self.model(input_ids, positions, intermediate_tensors, inputs_embeds)
        )
        # one [tokens, H] per layer -> [tokens, H] or [tokens, layers, H]
        if aux is None:
            self.trail_capture = None
        else:
            self.trail_capture = aux[0] if len(aux) == 1 else torch.stack(aux, dim=1)
        return hidden
