"""The run lifecycle every paper's `train.py` goes through: its config and command line (`config`), the run
object that seeds, claims its directory, resumes, trains and writes the record (`run`), the callbacks it is
made of (`training`), the results records (`results`), seeding and provenance (`repro`) and several devices
(`distribute`)."""
