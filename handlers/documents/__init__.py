"""What a case becomes on paper: the bilingual summary (HTML, PDF) and the case package."""
