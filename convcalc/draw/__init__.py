"""Pictures of convolution arithmetic: layers (Dumoulin & Visin style) and receptive fields with
exact path counts.

Plan, then draw: :mod:`convcalc.draw.geometry` and :mod:`convcalc.draw.paths` compute what is
drawn (pure, exact integers, no drawing code); :mod:`convcalc.draw.layer`, :mod:`convcalc.draw.rf`
and :mod:`convcalc.draw.terminal` turn it into SVG or text, with the SVG writer
:mod:`convcalc.draw.svg` (which the HTML network report, :mod:`convcalc.render.html`, uses too).
Nothing here is imported by the arithmetic commands.
"""
