"""The edge chip class (class name ``xylo``): one small fabric of bit-shift neurons for sensor
processing, as SynSense's Xylo (docs/edge-target.md)."""
