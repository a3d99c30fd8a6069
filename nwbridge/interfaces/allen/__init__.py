"""Interfaces reading one modality each of an Allen Visual Behavior Neuropixels session (AllenSDK NWB files)."""
