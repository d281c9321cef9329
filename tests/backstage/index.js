'use strict';
// A real Backstage catalog backend for obsctl's integration tests (see app-config.yaml for the
// environment variables it reads). Start: node index.js --config app-config.yaml
const { createBackend } = require('@backstage/backend-defaults');
const { createBackendModule } = require('@backstage/backend-plugin-api');
const { catalogLocationsExtensionPoint } = require('@backstage/plugin-catalog-node');

const backend = createBackend();
backend.add(require('@backstage/plugin-catalog-backend'));
// The proxy plugin, as a Backstage app reaches obsctl's entity status endpoint (proxy.endpoints in an
// extra config file the test passes; none by default).
backend.add(require('@backstage/plugin-proxy-backend'));

// The catalog accepts only "url" locations through POST /api/catalog/locations unless told
// otherwise; tests register temporary files, so "file" is allowed as well.
backend.add(
  createBackendModule({
    pluginId: 'catalog',
    moduleId: 'obsctl-allow-file-locations',
    register(reg) {
      reg.registerInit({
        deps: { locations: catalogLocationsExtensionPoint },
        async init({ locations }) {
          locations.setAllowedLocationTypes(['url', 'file']);
        },
      });
    },
  }),
);

backend.start();
