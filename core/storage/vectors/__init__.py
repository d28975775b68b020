"""Vector store: one interface (`base.VectorStore`), two implementations (Qdrant Edge, Qdrant server)."""
