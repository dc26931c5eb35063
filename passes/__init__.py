"""The pass library (``nmc.passes``): importing it registers every pass."""

from nmc.passes import canonicalize  # noqa: F401
from nmc.passes import calibrate  # noqa: F401
from nmc.passes import normalize  # noqa: F401
from nmc.passes import convert  # noqa: F401
from nmc.passes import quantize  # noqa: F401
from nmc.passes import fold_affine  # noqa: F401
from nmc.passes import partition  # noqa: F401
from nmc.passes import place  # noqa: F401
from nmc.passes import route  # noqa: F401
from nmc.passes import measure_rates  # noqa: F401
