"""Fine-tuning tasks: one module per task (data, head, evaluation), declared to `interface`; no task imports another.

What text tasks share has its own modules: `text_inputs` (encoding and prediction), `batching`
(seekable batches), `columns` (column picking), `prediction_output` (JSON lines and TSV),
`task_data` (reading tables) and `selection` (dev splits).
"""
