[GlobalParams]
  displacements = 'disp_x disp_y disp_z'
[]
[Mesh]
  [box]
    type = GeneratedMeshGenerator
    dim = 3
    nx = 3
    ny = 2
    nz = 1
    xmax = 3.0
    ymax = 2.0
    zmax = 1.0
    elem_type = HEX8
  []
  [pin_origin]
    type = ExtraNodesetGenerator
    input = box
    new_boundary = pin_origin
    coord = '0.0 0.0 0.0'
  []
  [pin_top]
    type = ExtraNodesetGenerator
    input = pin_origin
    new_boundary = pin_top
    coord = '0.0 0.0 1.0'
  []
  allow_renumbering = false
[]
[Variables]
  [disp_x]
  []
  [disp_y]
  []
  [disp_z]
  []
[]
[Kernels]
  [stress_x]
    type = StressDivergenceTensors
    variable = disp_x
    component = 0
  []
  [stress_y]
    type = StressDivergenceTensors
    variable = disp_y
    component = 1
  []
  [stress_z]
    type = StressDivergenceTensors
    variable = disp_z
    component = 2
  []
[]
[AuxVariables]
  [stress_xx]
    order = CONSTANT
    family = MONOMIAL
  []
  [stress_yy]
    order = CONSTANT
    family = MONOMIAL
  []
  [stress_xy]
    order = CONSTANT
    family = MONOMIAL
  []
  [strain_xx]
    order = CONSTANT
    family = MONOMIAL
  []
  [strain_yy]
    order = CONSTANT
    family = MONOMIAL
  []
  [strain_zz]
    order = CONSTANT
    family = MONOMIAL
  []
  [vonmises]
    order = CONSTANT
    family = MONOMIAL
  []
[]
[AuxKernels]
  [vonmises]
    type = RankTwoScalarAux
    variable = vonmises
    rank_two_tensor = stress
    scalar_type = VonMisesStress
    execute_on = timestep_end
  []
  [stress_xx]
    type = RankTwoAux
    variable = stress_xx
    rank_two_tensor = stress
    index_i = 0
    index_j = 0
    execute_on = timestep_end
  []
  [stress_yy]
    type = RankTwoAux
    variable = stress_yy
    rank_two_tensor = stress
    index_i = 1
    index_j = 1
    execute_on = timestep_end
  []
  [stress_xy]
    type = RankTwoAux
    variable = stress_xy
    rank_two_tensor = stress
    index_i = 0
    index_j = 1
    execute_on = timestep_end
  []
  [strain_xx]
    type = RankTwoAux
    variable = strain_xx
    rank_two_tensor = total_strain
    index_i = 0
    index_j = 0
    execute_on = timestep_end
  []
  [strain_yy]
    type = RankTwoAux
    variable = strain_yy
    rank_two_tensor = total_strain
    index_i = 1
    index_j = 1
    execute_on = timestep_end
  []
  [strain_zz]
    type = RankTwoAux
    variable = strain_zz
    rank_two_tensor = total_strain
    index_i = 2
    index_j = 2
    execute_on = timestep_end
  []
[]
[UserObjects]
  [euler_angles]
    type = PropertyReadFile
    prop_file_name = euler_angles.csv
    read_type = element
    nprop = 3
  []
[]
[Materials]
  [elasticity]
    type = ComputeElasticityTensorCP
    C_ijkl = '108.2 61.3 61.3 108.2 61.3 108.2 28.5 28.5 28.5'
    fill_method = symmetric9
    read_prop_user_object = euler_angles
  []
  [strain]
    type = ComputeSmallStrain
  []
  [stress]
    type = ComputeLinearElasticStress
  []
[]
[BCs]
  [grip_left]
    type = DirichletBC
    variable = disp_x
    boundary = left
    value = 0.0
  []
  [grip_right]
    type = DirichletBC
    variable = disp_x
    boundary = right
    value = 0.003
  []
  [pin_y]
    type = DirichletBC
    variable = disp_y
    boundary = 'pin_origin pin_top'
    value = 0.0
  []
  [pin_z]
    type = DirichletBC
    variable = disp_z
    boundary = pin_origin
    value = 0.0
  []
[]
[Postprocessors]
  [average_stress_xx]
    type = ElementAverageValue
    variable = stress_xx
  []
  [average_stress_yy]
    type = ElementAverageValue
    variable = stress_yy
  []
  [average_strain_xx]
    type = ElementAverageValue
    variable = strain_xx
  []
  [average_strain_yy]
    type = ElementAverageValue
    variable = strain_yy
  []
  [average_strain_zz]
    type = ElementAverageValue
    variable = strain_zz
  []
  [max_vonmises]
    type = ElementExtremeValue
    variable = vonmises
    value_type = max
  []
  [average_vonmises]
    type = ElementAverageValue
    variable = vonmises
  []
[]
[Executioner]
  type = Steady
  solve_type = NEWTON
  petsc_options_iname = '-pc_type -pc_factor_mat_ordering_type'
  petsc_options_value = 'lu nd'
  nl_rel_tol = 1e-10
  nl_abs_tol = 1e-12
  l_tol = 1e-10
[]
[Outputs]
  file_base = elasticity
  csv = true
  exodus = true
[]
