"""Pictures of convolution arithmetic: layers (Dumoulin & Visin style), receptive fields with exact
path counts, and a self-contained HTML network report.

Plan, then draw: :mod:`convcalc.draw.geometry` and :mod:`convcalc.draw.paths` compute what is
drawn (pure, exact integers, no drawing code); :mod:`convcalc.draw.layer`, :mod:`convcalc.draw.rf`,
:mod:`convcalc.draw.terminal` and :mod:`convcalc.draw.html` turn it into SVG, text or HTML.
Nothing here is imported by the arithmetic commands.
"""
