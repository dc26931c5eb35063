"""The class-neutral pass library (``nmc.passes``): importing it registers its passes.  Chip
classes register their mapping passes themselves (:func:`nmc.passmanager.load_passes`)."""

from nmc.passes import canonicalize  # noqa: F401
from nmc.passes import calibrate  # noqa: F401
from nmc.passes import normalize  # noqa: F401
from nmc.passes import convert  # noqa: F401
from nmc.passes import quantize  # noqa: F401
from nmc.passes import fold_affine  # noqa: F401
from nmc.passes import measure_rates  # noqa: F401
