// CareLoop's interactive API page: Swagger UI (vendored, Apache-2.0) on this gateway's /openapi.json.
// No request leaves for the internet: the online spec validator is off.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,
    tryItOutEnabled: true,
    persistAuthorization: false,
    displayRequestDuration: true,
    requestInterceptor: function (request) {
      if (!request.headers["X-Request-Id"]) {
        request.headers["X-Request-Id"] = "docs-" + Math.random().toString(36).slice(2, 12);
      }
      return request;
    }
  });
};
