// The parts of three.js the metaspatial viewer uses, bundled into one classic script (global MetaspatialThree).
export { WebGLRenderer, Scene, PerspectiveCamera, Color, HemisphereLight, DirectionalLight, AmbientLight,
  Raycaster, Vector2, Vector3, Box3, SRGBColorSpace, ACESFilmicToneMapping, NoToneMapping } from 'three';
export { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
export { OrbitControls } from 'three/addons/controls/OrbitControls.js';
