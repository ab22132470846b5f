"""The model stage: build, train, load and run Keras models (TensorFlow is imported only here and lazily)."""
