// The page is served by the server's gateway (server/web) at "/", its files under /assets.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: { outDir: "dist", assetsDir: "assets", emptyOutDir: true, sourcemap: false },
});
