"""Export a network spec to PyTorch code: ``convcalc export SPEC --to pytorch``.

:func:`export_pytorch` takes an evaluated network (:class:`convcalc.network.NetResult`) and
returns the source of one module that imports only torch (and torchvision.ops for deformable
convolutions); :mod:`.emitters` holds one translation per layer type.
"""

from convcalc.interop.torch_export.codegen import export_pytorch

__all__ = ["export_pytorch"]
