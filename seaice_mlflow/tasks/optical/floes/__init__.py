"""Ice floes one by one in close-range photos: instance segmentation with Mask R-CNN and floe sizes.

No data set labels floes one by one, so ``instances`` derives them from the semantic labels (the
connected regions of the floe classes); ``training`` trains the registry's ``maskrcnn`` on them
through the generic loop; ``scores`` matches predicted to reference floes (F1 at mask IoU 0.5);
``pyfunc`` is the logged model (photos in, instance maps out); ``sizes`` gives each photo's
floe-size distribution and ``products`` writes instance maps and sizes.
"""
