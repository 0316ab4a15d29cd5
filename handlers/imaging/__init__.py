"""Imaging in a PACS: checked studies go to Orthanc with a de-identified copy for
specialists, coordinators open them through short-lived signed links, erasure removes both."""
