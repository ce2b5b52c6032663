"""Differentiable physical models (PyTorch, batched, CPU and GPU).

- :mod:`.prosail`: PROSPECT-D leaf + 4SAIL canopy reflectance.
- :mod:`.srf`: Sentinel-2 spectral responses and band simulation.
- :mod:`.water_cloud`: Sentinel-1 VV/VH backscatter from vegetation and soil moisture.
- :mod:`.phenology`: double-logistic seasonal trajectories.
- :mod:`.acquisition`: revisit schedules, cloud masks and sensor noise.
- :mod:`.scene`: the scene simulator behind the embedded default tasks.
"""
