"""Words the text job types share: stopwords and what counts as a word."""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    """a about above after again against all almost also although always am among an and another any anyone
    anything are around as at away back be because been before being below beside between both but by can
    could did do does doing done down during each either else enough even ever every everything few for
    from further get gets getting got had has have having he her here hers herself him himself his how however
    i if in into is it its itself just least less let like made make many may me might mine more most much
    must my myself near neither never next no nobody none nor not nothing now of off often oh ok okay on once
    one only onto or other others otherwise our ours ourselves out over own perhaps please quite rather really
    said same say says see seem shall she should since so some someone something sometimes soon still such
    than that the their theirs them themselves then there these they thing things this those though through
    thus to too toward towards under until up upon us very was we well were what whatever when where whether
    which while who whom whose why will with within without would yes yet you your yours yourself yourselves
    thank thanks sure also maybe need want going know think tell told just yeah hello hi""".split()
)
WORD = re.compile(r"[^\W\d_][^\W_]*(?:['’][^\W\d_]+)?")
