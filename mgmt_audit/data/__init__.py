"""Data stage: DICOM scan and reorientation, preprocessing, cache, manifest, phantom cohorts, controls."""
