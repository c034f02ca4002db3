"""The post-processing lanes' input as the sequencer drives them: `pp_lanes` channels a cycle,
issued by stage P of an MVM layer (`TileAccumulator`, hw/tile_accumulator.py) or stage S of a
pooling layer (`PoolResultIssue`, hw/pool_issue.py), with the layer's constants.
"""
from amaranth import signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from aoncim.config import AonCimConfig

from .postproc import pp_addr_bits, pp_code_bits


def _issue_members(cfg: AonCimConfig) -> dict:
    return {
        "param_addr": Out(range(cfg.param_depth)),
        "valid": Out(cfg.pp_lanes),
        "code": Out(data.ArrayLayout(signed(pp_code_bits(cfg)), cfg.pp_lanes)),
        "addr": Out(pp_addr_bits(cfg)),
    }


class PostprocIssueSignature(wiring.Signature):
    """Up to `pp_lanes` consecutive channels a cycle from a stage to post-processing; lane q is
    channel param_addr + q to address addr + q.

      param_addr  cycle t: the parameter (scale, bias) address of lane 0; the SCALE and BIAS
                  memories answer at t+1
      valid       cycle t+1: lane q carries a channel
      code        lane q's code (tile sum of ADC codes, or pooling result)
      addr        destination address of lane 0
    """

    def __init__(self, cfg: AonCimConfig):
        super().__init__(_issue_members(cfg))


class PostprocSignature(wiring.Signature):
    """What the sequencer drives into the post-processing lanes (hw/postproc.py `PostProcessor`)
    and their writes: the members of `PostprocIssueSignature` from the layer's issuing stage, and
    the layer's constants, held while it runs:

      alpha        drift-compensation constant of the layer (latched at DECODE)
      shift, out_bits, to_out, relu
                   the descriptor's fields of the same names
      passthrough  max pooling: the code is the result
      bank         the activation bank the results go to (unless to_out)
    """

    def __init__(self, cfg: AonCimConfig):
        super().__init__(_issue_members(cfg) | {
            "alpha": Out(cfg.alpha_bits), "shift": Out(6), "out_bits": Out(4), "to_out": Out(1), "relu": Out(1),
            "passthrough": Out(1), "bank": Out(1),
        })
