"""Stage: getting tomograms and ground truth (CryoET Data Portal, Dataverse, local files, phantoms)."""
