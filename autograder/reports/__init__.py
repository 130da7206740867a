"""Layer 4: presenting results (terminal table, notebook table, JSON). No grading logic here."""
