/*
 * slope/nn.h - building and training small models: initialisers, layers,
 * optimisers, save/load of parameter stores, CSV data. Included by slope.h.
 */
#ifndef SLOPE_NN_H
#define SLOPE_NN_H

#ifndef SLOPE_H
#error "include <slope.h>, not <slope/nn.h>"
#endif

#endif /* SLOPE_NN_H */
