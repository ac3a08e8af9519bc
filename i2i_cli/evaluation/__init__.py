"""Metrics: FID/KID (clean-fid protocols), LPIPS (paired and diversity), FCN-score. Pure functions on folders."""
