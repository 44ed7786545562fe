"""Classification variants of one model: prompt rendering, retrieval, batch prediction, scoring."""
